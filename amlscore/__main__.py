from amlscore.cli import main

main()
