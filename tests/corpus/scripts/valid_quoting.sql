-- semicolons inside quotes, comments, parentheses and dollar quotes do not end a command
SELECT 'a;b', "weird;name", E'it\'s;', $$x;y$$, $tag$ ; $tag$ /* c; /* nested; */ */
  , (SELECT 1; ) AS paren
;
SELECT :x::int, ':not_a_var', 1::bigint -- trailing ; comment
;
