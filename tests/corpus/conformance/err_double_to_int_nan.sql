\set a random(0.0 / 0, 3)
