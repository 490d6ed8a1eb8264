"""btd.plugins: built-in plugins, registered like third-party ones."""
