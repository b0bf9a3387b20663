"""CSV import and export of customers, companies, products, orders and touchpoints."""
