"""Authentication and authorisation at the gateway: users, sessions, API keys."""
