"""iMIP (RFC 6047): building and reading calendar emails, headers, input limits."""
