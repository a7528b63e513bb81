"""Built-in node packs, one module per topic. Each is also an example of the plugin API."""
