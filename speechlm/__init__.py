"""speechlm: speech as discrete tokens, generated the way a text LM generates words.

Nothing heavy is imported here: `import speechlm` stays cheap so the CLI starts fast.
"""

__version__ = "0.1.0"
