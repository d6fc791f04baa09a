"""Generated configuration files: pure functions from typed settings to file text.

No Pulumi here, so the tests render them directly and hand them to the real tools
(`nginx -t`, `promtool`, `amtool`), and any platform can ship them.
"""
