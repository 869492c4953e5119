from rbl.cli import main

main()
