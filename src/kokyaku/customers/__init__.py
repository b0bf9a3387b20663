"""People, companies and their contacts, identities, custom fields."""
