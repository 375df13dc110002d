//! Throwaway PostgreSQL cluster (placeholder until implemented).
