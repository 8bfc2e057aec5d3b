from localai_provision.cli import main

raise SystemExit(main())
