\set a random_exponential(1, 10, 0)
