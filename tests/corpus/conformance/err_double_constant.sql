\set a 1.0E309
