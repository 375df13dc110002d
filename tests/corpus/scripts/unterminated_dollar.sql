SELECT $$ unterminated
