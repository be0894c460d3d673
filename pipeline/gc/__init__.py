"""`gc`: what no current record or recent execution references, listed, and deleted when asked."""
