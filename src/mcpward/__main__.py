from mcpward.cli import main

main()
