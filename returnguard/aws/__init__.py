"""Thin AWS adapters behind small protocols; the domain modules never import these."""
