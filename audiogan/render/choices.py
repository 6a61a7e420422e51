"""Where ``audiogan render`` can run, apart from the engines: its command line offers these without
importing torch."""

ENGINES = ("local", "ray")
