from quadlab.cli.app import main

raise SystemExit(main())
