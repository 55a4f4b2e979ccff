"""Image facts from bytes: format sniffing, one decode, hashes and quality statistics."""
