\set a nosuch(1)
