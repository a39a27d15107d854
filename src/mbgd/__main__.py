from mbgd.cli import main

main()
