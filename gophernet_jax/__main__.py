from gophernet_jax.app import main

main()
