from nerfw.cli import main

raise SystemExit(main())
