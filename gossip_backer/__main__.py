"""`python -m gossip_backer` is the `backer` command."""

from gossip_backer.cli import main

raise SystemExit(main())
