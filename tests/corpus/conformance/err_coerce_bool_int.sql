\set a true + 1
