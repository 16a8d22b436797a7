"""The engines that run processes, one package each; the services reach them through
`processes.executors.executor_get` and the JTB_EXECUTORS setting."""
