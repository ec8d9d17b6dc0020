from kvmtune.entry import main

raise SystemExit(main())
