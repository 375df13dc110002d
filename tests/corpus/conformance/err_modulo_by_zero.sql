\set a mod(5, 0)
