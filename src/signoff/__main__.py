from signoff.entrypoints.cli.main import main

main()
