from metanmt.cli import main

raise SystemExit(main())
