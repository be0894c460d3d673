"""A built pipeline definition: its model, offline validation, and its pictures (Mermaid, SVG)."""
