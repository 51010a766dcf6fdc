from bihm_app.cli.app import main

main()
