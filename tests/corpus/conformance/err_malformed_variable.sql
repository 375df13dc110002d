-- args: -D v=hello
\set a :v + 1
