from ptm_sync.cli import main

raise SystemExit(main())
