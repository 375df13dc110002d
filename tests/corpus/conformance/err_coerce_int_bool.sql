\set a NOT 1
