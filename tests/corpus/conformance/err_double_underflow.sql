\set a 1e-400
