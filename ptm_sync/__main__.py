from ptm_sync.interfaces.cli.main import main

raise SystemExit(main())
