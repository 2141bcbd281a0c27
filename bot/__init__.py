"""Bot runtime: aiohttp app, router, templates, conversation log, feedback, review, widget."""
