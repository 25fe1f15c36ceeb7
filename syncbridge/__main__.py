from syncbridge.cli.main import main

main()
