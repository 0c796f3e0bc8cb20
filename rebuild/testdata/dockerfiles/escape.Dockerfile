# escape=`

ARG WIN_BASE=mcr.microsoft.com/windows/servercore:ltsc2022

FROM ${WIN_BASE} `
   AS win
RUN dir C:\ `
    && echo done
FROM win
