from pusher_farm.cli import main

main()
