"""Model backends that need torch; imported only when a config asks for them."""
