from fusionseg.cli import main

raise SystemExit(main())
