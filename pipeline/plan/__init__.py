"""`deploy.py plan`: what would run now and why, and what it costs (cost model, published prices)."""
