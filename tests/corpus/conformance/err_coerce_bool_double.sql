\set a sqrt(true)
