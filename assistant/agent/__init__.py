"""The hands-free desktop agent: wake phrase, follow-up window, actions on the desktop."""
