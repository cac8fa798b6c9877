"""One resource per external system; see each module. Settings live in `resources.settings`."""
