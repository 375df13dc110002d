SELECT 'never closed
;
