"""Live LTV:CAC from e-commerce event streams."""
