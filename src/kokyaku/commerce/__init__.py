"""Products, orders, order lines, returns and the per-customer purchase metrics."""
