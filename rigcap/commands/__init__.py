"""One module per ``rigcap`` subcommand; each defines ``register(subparsers)``.

Keep these thin: parse arguments, call the packages, print.  Heavy imports go
inside ``run`` so ``rigcap --help`` stays fast.
"""
