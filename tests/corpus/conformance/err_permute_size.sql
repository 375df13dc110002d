\set a permute(1, 0)
