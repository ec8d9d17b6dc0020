"""One core function per command: build the Host, do the work, hand off to a renderer."""
