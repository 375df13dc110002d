//! POS dataset (placeholder until implemented).
